"""A minimal OpenID Connect provider for the tests, served on loopback in a thread.

Discovery document, JWKS, an authorize endpoint that approves at once (redirecting back with a
code) and a token endpoint answering an RS256-signed id_token (joserfc, authlib's JOSE library).
Like a strict provider it demands PKCE (S256): a code is redeemed only with its verifier.
`forge` makes the next id_tokens wrong in one way, to check the web server refuses them;
`email_verified` is the claim's value (MISSING: left out).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from urllib.parse import urlencode

from flask import Flask, abort, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server

from helpers import free_port

FORGERIES = ("bad_signature", "wrong_audience", "expired", "wrong_issuer", "wrong_nonce",
             "no_email")
MISSING = object()


class OIDCProvider:
    def __init__(self, client_id: str = "dss-web", client_secret: str = "test-client-secret"):
        self.client_id, self.client_secret = client_id, client_secret
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "signing-key"})
        self.impostor_key = RSAKey.generate_key(2048, parameters={"kid": "signing-key"})
        self.email, self.name, self.forge = "alice@example.org", "Alice Example", None
        self.email_verified = True
        self.discovery_leaves_out: tuple[str, ...] = ()  # keys of a broken discovery document
        self._codes: dict[str, tuple[str, str]] = {}  # code -> nonce, PKCE code challenge
        self._server = make_server("127.0.0.1", self.port, self._app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._thread.join(5)

    def _app(self) -> Flask:
        app = Flask("test-oidc-provider")
        app.add_url_rule("/.well-known/openid-configuration", view_func=self._discovery)
        app.add_url_rule("/jwks", view_func=self._jwks)
        app.add_url_rule("/authorize", view_func=self._authorize)
        app.add_url_rule("/token", view_func=self._token, methods=["POST"])
        return app

    def _discovery(self):
        document = dict(issuer=self.issuer, authorization_endpoint=f"{self.issuer}/authorize",
                        token_endpoint=f"{self.issuer}/token", jwks_uri=f"{self.issuer}/jwks",
                        response_types_supported=["code"], subject_types_supported=["public"],
                        id_token_signing_alg_values_supported=["RS256"],
                        token_endpoint_auth_methods_supported=["client_secret_basic"])
        return jsonify({key: value for key, value in document.items()
                        if key not in self.discovery_leaves_out})

    def _jwks(self):
        return jsonify(KeySet([self.key]).as_dict(private=False))

    def _authorize(self):
        args = request.args
        if (args.get("client_id") != self.client_id or args.get("response_type") != "code"
                or args.get("code_challenge_method") != "S256" or not args.get("code_challenge")):
            abort(400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = (args.get("nonce", ""), args["code_challenge"])
        query = urlencode({"code": code, "state": args.get("state", "")})
        return redirect(f"{args['redirect_uri']}?{query}")

    def _token(self):
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return jsonify(error="invalid_client"), 401
        nonce, challenge = self._codes.pop(request.form.get("code", ""), (None, None))
        verifier = request.form.get("code_verifier", "").encode()
        if nonce is None or challenge != s256(verifier):
            return jsonify(error="invalid_grant"), 400
        return jsonify(access_token=secrets.token_urlsafe(16), token_type="Bearer",
                       expires_in=3600, id_token=self.id_token(nonce))

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": self.email, "aud": self.client_id, "iat": now,
                  "exp": now + 600, "nonce": nonce, "email": self.email, "name": self.name}
        if self.email_verified is not MISSING:
            claims["email_verified"] = self.email_verified
        key = self.key
        if self.forge == "bad_signature":
            key = self.impostor_key
        elif self.forge == "wrong_audience":
            claims["aud"] = "another-client"
        elif self.forge == "expired":
            claims.update(iat=now - 7200, exp=now - 3600)
        elif self.forge == "wrong_issuer":
            claims["iss"] = "http://evil.example"
        elif self.forge == "wrong_nonce":
            claims["nonce"] = "replayed-nonce"
        elif self.forge == "no_email":
            del claims["email"]
        return jwt.encode({"alg": "RS256", "kid": "signing-key"}, claims, key)


def s256(verifier: bytes) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
