"""The Django Channels tutorial's project ("mysite" with a "chat" app), moved to Switchboard.

``mysite/asgi.py`` is the tutorial's file with only ``channels`` renamed to ``switchboard``:
it imports Switchboard's auth, routing and security modules before Django is set up.
tests/test_tutorial_project.py runs it under ``switchboard serve``, ``manage.py runserver``
and ``manage.py test`` (the live-server test case in ``chat/tests.py``), always in
subprocesses, with this folder as the working directory.
"""
