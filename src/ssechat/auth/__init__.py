"""Accounts and access: who is asking, and whether they may.

``AccountService`` (``auth.service``) signs people in and out, checks a request's session cookie
or API key (``authenticate``, cheap: a cache in front of one indexed read), manages API keys,
the first-run setup and the admins' work on accounts, limits sign-in attempts
(``auth.limiter``) and ends the event streams of credentials that stop being valid
(``auth.streams``). Passwords are hashed with argon2id (``auth.passwords``, argon2-cffi);
tokens and keys are random and stored only as hashes (``auth.tokens``).

Imports point one way: this package uses the store and the errors, and the API uses it. It must
never speak HTTP (no request, cookie or header: the API reads those and hands in values), never
log or return a password, a token or a key (but a new key, once, to its owner), and never
decide what a user may read: the store's queries take the owner.
"""

from ssechat.auth.principal import Principal
from ssechat.auth.service import AccountService, SignedIn

__all__ = ["AccountService", "Principal", "SignedIn"]
