"""OpenID Connect provider: Authlib wiring and nothing else (the login interaction lives in
idp.login; accounts in idp.accounts)."""
