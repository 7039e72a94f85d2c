"""Mint tokens with PyJWT, the way a Python identity provider would, for
gateway/tests/all/interop.rs. Prints {"jwks": ..., "tokens": {alg: token}} as JSON.

usage: pyjwt_mint.py ISSUER AUDIENCE SUBJECT
"""
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

issuer, audience, subject = sys.argv[1:4]
now = int(time.time())
claims = {
    "iss": issuer,
    "aud": audience,
    "sub": subject,
    "iat": now,
    "nbf": now,
    "exp": now + 300,
    "realm_access": {"roles": ["buyer", "organiser"]},
    "preferred_username": subject,
}
keys = {
    "RS256": (rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
    "PS256": (rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
    "ES256": (ec.generate_private_key(ec.SECP256R1()), ECAlgorithm),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm),
}
jwks, tokens = [], {}
for alg, (private, algorithm) in keys.items():
    kid = f"py-{alg.lower()}"
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    jwks.append(jwk)
    tokens[alg] = jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})
print(json.dumps({"jwks": {"keys": jwks}, "tokens": tokens, "pyjwt": jwt.__version__}))
