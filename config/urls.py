from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from chat.signup_views import Login, signup

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat:room_list", permanent=False)),
    path("chat/", include("chat.urls")),
    path("accounts/signup/", signup, name="signup"),
    path("accounts/login/", Login.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # Pages link their icon; this is for clients that ask the old address anyway.
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("chat/favicon.svg"), permanent=True)),
    ),
]
