"""OpenAPI: the product's JWT authentication is described as simplejwt's."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class JWTAuthenticationScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.JWTAuthentication"
