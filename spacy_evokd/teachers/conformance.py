"""A module for the type checker only (nothing imports it): mypy, run by .ci/run, proves here that
each shipped teacher has the teacher protocols of ty.py that the loop, `select` and `estimate`
use it through, and each chat model ty.ChatModel."""

from ..models.openai_compatible import OpenAICompatible
from ..models.plain import PlainPromptModel
from ..ty import ChatModel, LLKDTeacher, PromptedTeacher, Teacher
from .llm import LLMTeacher
from .simulated import SimulatedTeacher


def llm_teacher(teacher: LLMTeacher) -> None:
    _required: Teacher = teacher
    _select: LLKDTeacher = teacher
    _estimate: PromptedTeacher = teacher


def simulated_teacher(teacher: SimulatedTeacher) -> None:
    _required: Teacher = teacher


def chat_models(openai: OpenAICompatible, plain: PlainPromptModel) -> None:
    _served: ChatModel = openai
    _wrapped: ChatModel = plain
