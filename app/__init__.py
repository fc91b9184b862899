"""Assembly: settings, the Faust app factory, topics and tables, web endpoints and the ``nba`` CLI.

Nothing is built at import time: :func:`app.factory.create_app` builds an app from settings.
"""
