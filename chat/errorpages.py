"""The designed 404 page with DEBUG on too.

With DEBUG on, Django answers a missing page with its technical 404 (the URL
patterns and settings), which is not what a member should meet for a room that
was deleted, even under `make run`. Static files are served before this runs.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.defaults import page_not_found


def designed_404_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            settings.DEBUG
            and response.status_code == 404
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return page_not_found(request, exception=None)
        return response

    return middleware
