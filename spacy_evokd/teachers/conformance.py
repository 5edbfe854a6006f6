"""A module for the type checker only (nothing imports it): mypy, run by .ci/run, proves here that
each shipped teacher has the teacher protocols of ty.py that the loop, `select` and `estimate`
use it through, and each chat model ty.ChatModel."""

from typing import List

from ..models.openai_compatible import OpenAICompatible
from ..models.plain import PlainPromptModel
from ..ty import ChatModel, LLKDTeacher, PromptedTeacher, Teacher
from .llm import LLMTeacher
from .simulated import SimulatedTeacher


def shipped_teachers(llm: LLMTeacher, simulated: SimulatedTeacher) -> None:
    # each list element is checked against the declared protocol
    _required: List[Teacher] = [llm, simulated]
    _select: LLKDTeacher = llm
    _estimate: PromptedTeacher = llm


def chat_models(openai: OpenAICompatible, plain: PlainPromptModel) -> None:
    _models: List[ChatModel] = [openai, plain]
