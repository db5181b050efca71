from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat import lifecycle

        # Under daphne: recover dead processes' replies at start-up, drain on SIGTERM.
        lifecycle.install()
