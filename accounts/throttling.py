from rest_framework.throttling import ScopedRateThrottle

from accounts.client_address import request_client_address


class ClientAddressScopedRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle keyed on accounts.client_address: DRF's own get_ident believes a
    client-sent X-Forwarded-For (without NUM_PROXIES), so a new one per try was a new bucket."""

    def get_ident(self, request) -> str:
        return request_client_address(request)
