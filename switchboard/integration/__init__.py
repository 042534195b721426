"""Django glue: the settings the Django-free packages read through hooks (``settings``), the
system checks (``checks``), the readiness check (``health``) and the native HTTP path that runs
Django's views in the server's thread pool (``native_http``)."""
