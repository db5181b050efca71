"""Sign-up: open to anyone, closed, or through an invite link (chat.signups decides)."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from chat import invites, signups
from chat.pages import HtmxHttpRequest


@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request: HtmxHttpRequest) -> HttpResponse:
    if not signups.signup_open(request=request):
        # Closed: the page says where accounts come from, and a POST creates none.
        status = 403 if request.method == "POST" else 200
        return render(request, "registration/signup.html", {"closed": True}, status=status)
    form: UserCreationForm[User] = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = invites.invite_remembered(request=request)
        if settings.CHAT_SIGNUP == "open" or token is None:
            login(request, form.save())
            # Signed up after opening an invite link: its room, joined.
            return (
                redirect("chat:invite_open", token=token) if token else redirect("chat:room_list")
            )
        # Closed: an account is made only together with a use of the link that allowed it.
        try:
            with transaction.atomic():
                user = form.save()
                room = invites.invite_accept(token=token, user=user)
        except invites.InviteRefused as refused:
            context = {"refused": refused.text()}
            return render(request, "chat/invite.html", context, status=refused.status)
        invites.invite_forget(request=request)
        login(request, user)
        return redirect(room)
    return render(request, "registration/signup.html", {"form": form})


class Login(LoginView):
    """Django's login page, offering sign-up only to someone who may use it."""

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        return super().get_context_data(**kwargs) | {
            "signup_open": signups.signup_open(request=self.request)
        }
