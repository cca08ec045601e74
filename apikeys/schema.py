"""OpenAPI: `Authorization: Api-Key <key>` as a security scheme of every operation."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A service account's key: `Authorization: Api-Key <key>` "
            "(`manage.py create_api_key`); it reaches only the rooms it was granted.",
        }
