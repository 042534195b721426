"""The Django project bench/tasks.py runs Switchboard's task worker with
(``DJANGO_SETTINGS_MODULE=bench.tasks_project.settings``)."""
