#!/usr/bin/env python
"""The Channels 1 chat's manage.py: runs on Channels 1.1 (Python 3.6) and on Switchboard."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "c1site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
