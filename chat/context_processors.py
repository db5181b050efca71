from django.http import HttpRequest

from chat import llm


def model_info(request: HttpRequest) -> dict[str, object]:
    return {"model_name": llm.model_name(), "model_is_demo": not llm.is_configured()}
