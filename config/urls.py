from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from chat.views import signup

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat:room_list", permanent=False)),
    path("chat/", include("chat.urls")),
    path("accounts/signup/", signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
