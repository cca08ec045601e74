"""The REST API: DRF views, serializers, urls, and the error mapping refusal -> HTTP."""
