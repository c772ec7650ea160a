"""rtml's gateway: an NGINX configuration in front of the server (``rtml gateway``).

:mod:`.nginx` renders ``nginx.conf.template``; ``scripts/services.sh`` runs NGINX with it.
"""
