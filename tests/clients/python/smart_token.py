"""Gets an access token from imaging-cdr's token endpoint as a SMART backend service would, with nothing but
the standard library, `requests` and the `openssl` command (an RS384 client assertion).

Usage: python smart_token.py jwks KEY.pem KID              prints the JWKS of the key's public half
       python smart_token.py token KEY.pem KID CLIENT_ID TOKEN_URL SCOPE   prints an access token
"""

import base64
import json
import subprocess
import sys
import time
import uuid

import requests


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(key, kid):
    text = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                          capture_output=True, text=True).stdout
    modulus = bytes.fromhex(text.strip().split("=", 1)[1])
    return {"keys": [{"kty": "RSA", "alg": "RS384", "kid": kid, "n": b64url(modulus), "e": "AQAB"}]}


def token(key, kid, client_id, token_url, scope):
    header = {"alg": "RS384", "typ": "JWT", "kid": kid}
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": int(time.time()) + 240,
              "jti": str(uuid.uuid4())}
    message = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = subprocess.run(["openssl", "dgst", "-sha384", "-sign", key], input=message.encode(),
                               check=True, capture_output=True).stdout
    response = requests.post(token_url, data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": f"{message}.{b64url(signature)}",
        "scope": scope,
    })
    response.raise_for_status()
    return response.json()["access_token"]


if sys.argv[1] == "jwks":
    print(json.dumps(jwks(sys.argv[2], sys.argv[3])))
else:
    print(token(*sys.argv[2:7]))
