"""Verifies Gatehouse access tokens with PyJWT, an independent JWT library.

Reads one JSON object on stdin:
  {"jwks_uri": ..., "issuer": ..., "audience": ..., "tokens": ["...", ...]}
and prints one JSON array on stdout: for each token, {"valid": bool, "error": str|null,
"alg": str|null, "sub": str|null}. The keys come from the server's JWKS through
PyJWKClient, exactly as an app backend in Python would get them.
"""

import json
import sys

import jwt
from jwt import PyJWKClient


def verify(client, token, issuer, audience):
    try:
        header = jwt.get_unverified_header(token)
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256", "ES256", "EdDSA"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "sub", "aud"]},
        )
        if header.get("typ") != "at+jwt":
            return {"valid": False, "error": "typ is not at+jwt", "alg": header.get("alg"), "sub": None}
        return {"valid": True, "error": None, "alg": header.get("alg"), "sub": claims["sub"]}
    except Exception as error:  # every failure is a refusal, reported by name
        return {"valid": False, "error": f"{type(error).__name__}: {error}", "alg": None, "sub": None}


def main():
    request = json.load(sys.stdin)
    client = PyJWKClient(request["jwks_uri"], cache_keys=True)
    results = [verify(client, t, request["issuer"], request["audience"]) for t in request["tokens"]]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
