"""Imported first by the fork server that worker processes fork from (`workers`).

It makes the server ignore Ctrl-C from here on, before it imports anything else, and
so the workers it forks start ignoring it too (a fork keeps an ignored signal ignored):
a Ctrl-C pressed while a worker starts prints no traceback, and what stops is the
run's to decide. Nothing else imports this module.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
