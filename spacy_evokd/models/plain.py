"""PlainPromptModel: any spacy-llm model (prompts in, answers out) as a ty.ChatModel.

A spacy-llm model is a callable ``Iterable[Iterable[str]] -> Iterable[Iterable[str]]``: per doc,
its prompt shards in, one answer per shard out. It has no chat turns, no request fields and no
token counts, so this adapter:

- renders the chat as one transcript prompt ("SYSTEM:\\n...\\n\\nUSER:\\n...\\n\\nASSISTANT:\\n");
- answers ``n`` by calling the model ``n`` times with that prompt;
- sends no request fields (temperature, seed, max_tokens, answer schema, logprobs): the model
  has its own settings, and takes the prompt only;
- estimates tokens from characters (~4 per token) and marks the usage as estimated;
- makes the answer storable (untrusted.storable): the model is someone else's transport.
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ..ty import ChatResult, Usage
from ..untrusted import storable

PromptModel = Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]]


def transcript(messages: Sequence[Dict[str, str]]) -> str:
    """The chat as one prompt, ending where the assistant's answer starts."""
    return "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in messages) + "\n\nASSISTANT:\n"


class PlainPromptModel:
    """A spacy-llm model behind the ChatModel surface LLMTeacher talks to."""

    structured_output: Optional[str] = None  # takes no answer schema: the prompt only
    structured_output_downgrades = 0
    offers_logprobs = False

    def __init__(self, model: PromptModel):
        self.model = model
        self.name = f"{getattr(model, 'name', type(model).__name__)}"
        self.config: Dict[str, Any] = {}  # sends no request body of its own

    def __repr__(self) -> str:
        return f"PlainPromptModel({self.model!r})"

    def chat(self, messages: List[Dict[str, str]], n: int = 1, **params: Any) -> ChatResult:
        """``n`` answers to the chat, one model call each; ``params`` are not sent (see above)."""
        prompt = transcript(messages)
        usage, texts = Usage(), []
        for _ in range(n):
            answers = [list(shards) for shards in self.model([[prompt]])]
            text = storable(answers[0][0] if answers and answers[0] else "")
            texts.append(text)
            usage.add(
                Usage(
                    requests=1,
                    prompt_tokens=max(1, len(prompt) // 4),
                    completion_tokens=max(1, len(text) // 4),
                    estimated=True,
                )
            )
        return ChatResult(texts=texts, usage=usage)

    def chat_many(self, conversations: Sequence[List[Dict[str, str]]], **params: Any) -> List[ChatResult]:
        return [self.chat(list(messages), **params) for messages in conversations]

    def use_cache(self, cache: Any) -> None:
        """Not cached: the run's response cache keys on request bodies, and this model sends none."""
