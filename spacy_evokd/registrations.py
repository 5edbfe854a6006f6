"""Every registered function of spacy-evokd, in one place (versioned names, ``*.v1``).

spaCy and spacy-llm find these through the entry points in ``setup.cfg``; the implementation
modules are imported inside the factories so that loading a name stays cheap and can't break
spaCy for unrelated pipelines (the OpenAI-compatible model's module is light: it is imported here).
"""

import logging
from typing import Any, Callable, Dict, List, Optional

from spacy.util import registry
from spacy_llm.registry import registry as llm_registry

from .models.openai_compatible import OpenAICompatible

# the class itself is the registered function (its __init__ is the config's schema); its module
# imports only the standard library and our light modules (openai is imported when one is built)
make_openai_compatible = llm_registry.llm_models.register("spacy_evokd.OpenAICompatible.v1", func=OpenAICompatible)


@registry.misc("spacy_evokd.LLMTeacher.v1")
def make_llm_teacher(
    model: Any,
    task: str,
    labels: List[str],
    label_definitions: Dict[str, str] = {},
    task_description: str = "",
    prompt_version: str = "v1",
    template_dir: Optional[str] = None,
    max_examples_shown: int = 8,
    lang: str = "en",
    written_texts_shown: int = 30,
    situation_hints: bool = True,
    examples_in_generation: bool = True,
    label_temperature: Optional[float] = 0.0,
    label_batch: int = 4,
    vote_temperature: Optional[float] = 0.7,
):
    """The EvoKD teacher over any spacy-llm model (``@llm_models``): weakness analysis,
    generation of hard and easy inputs in the same chat, labelling in a separate chat.

    model: a spacy-llm model callable; ``spacy_evokd.OpenAICompatible.v1`` adds real chat
        turns, token usage and logprobs, other models get the chat as one transcript prompt.
    task (str), labels (list): the student's task (a name in spacy_evokd.tasks: "textcat", "ner", "textcat_multilabel"
        or another registered task) and label set.
    label_definitions (dict): one line per label, shown in the prompts.
    task_description (str): what the texts are ("customer support messages", ...).
    prompt_version (str): which ``prompts/<step>.<task>.<version>.jinja`` templates to use.
    template_dir (str): a directory with your own templates of the same names.
    max_examples_shown (int): correct / wrong samples shown in the analysis prompt, each.
    written_texts_shown (int): texts already written (seed, earlier rounds, this round) shown in
        the generation prompt, newest first, so the teacher writes different ones (0-30; 0: none,
        for small models that copy what they are shown).
    situation_hints (bool): set each requested text in a different everyday situation, drawn per
        request (spacy_evokd/situations.py), so a small teacher doesn't rewrite the same texts.
    examples_in_generation (bool): the generation request continues the analysis chat with the
        student's correct and wrong texts in it (EvoKD's one conversation); false: it sees the
        analysis prompt without those texts (scores, confusions, the analysis), for small models
        that copy the texts they are shown.
    label_temperature (float or null): the labelling requests' temperature (0: the model's most
        likely labels; null: the model's own setting). Generation keeps the model's temperature.
    label_batch (int): texts per labelling request (small models label long lists worse).
    vote_temperature (float or null): the second labelling vote's temperature ([evokd]
        second_vote): above 0, so the vote is a new sample of the labelling answer.
    """
    from .tasks import get_task
    from .teachers.llm import LLMTeacher

    return LLMTeacher(
        model=model,
        task=get_task(task),
        labels=list(labels),
        label_definitions=dict(label_definitions),
        task_description=task_description,
        prompt_version=prompt_version,
        template_dir=template_dir,
        max_examples_shown=max_examples_shown,
        lang=lang,
        written_texts_shown=written_texts_shown,
        situation_hints=situation_hints,
        examples_in_generation=examples_in_generation,
        label_temperature=label_temperature,
        label_batch=label_batch,
        vote_temperature=vote_temperature,
    )


@registry.misc("spacy_evokd.SimulatedTeacher.v1")
def make_simulated_teacher(
    task: str,
    labels: List[str],
    labelled_pool: Optional[str] = None,
    label_noise: float = 0.0,
    seed: int = 0,
    lang: str = "en",
    hard_from: str = "weak_labels",
    embedder: str = "student",
    pool: Optional[str] = None,
):
    """An offline stand-in for an LLM teacher: answers the three EvoKD calls with real labelled
    examples drawn from ``labelled_pool`` (a JSONL file or DocBin), aimed at the student's weak
    labels and confusions. It is named "simulated" in every log line and report.

    labelled_pool (str): labelled examples, JSONL ({"text","label"} / {"tokens","tags"}) or
        ``.spacy``. Not to be confused with [evokd] unlabelled_pool (pool mode's unlabelled texts).
    label_noise (float): probability of returning a wrong label, to mimic teacher mistakes.
    seed (int): random seed for the draws and the noise.
    hard_from (str): "weak_labels": hard samples drawn from the weakest labels; "near_wrong": the
        pool samples nearest to the student's wrong samples (what EvoKD means by hard).
    embedder (str): nearness for "near_wrong": "student" (its own vectors) or "minilm".
    pool (str): the old name of ``labelled_pool`` (deprecated: a warning says so).
    """
    from .data import DataError
    from .tasks import get_task
    from .teachers.simulated import SimulatedTeacher
    from .ty import ConfigError

    if pool is not None:
        if labelled_pool is not None:
            raise ConfigError(
                "[evokd.teacher] sets both pool and labelled_pool: pool is the old name; keep labelled_pool"
            )
        logging.getLogger("spacy_evokd").warning(
            "[evokd.teacher] pool is deprecated: call it labelled_pool (the simulated teacher's labelled examples)"
        )
        labelled_pool = pool
    if not labelled_pool:
        raise ConfigError(
            "[evokd.teacher] labelled_pool is not set: the labelled examples (JSONL or .spacy) the "
            "simulated teacher draws from"
        )
    task_obj = get_task(task)  # outside the try: an unknown task is no fault of labelled_pool
    try:
        return SimulatedTeacher(
            pool=labelled_pool,
            task=task_obj,
            labels=list(labels),
            label_noise=label_noise,
            seed=seed,
            lang=lang,
            hard_from=hard_from,
            embedder=embedder,
        )
    except DataError as e:
        raise DataError(
            f"{e} ([evokd.teacher] labelled_pool: the simulated teacher answers with the labels of "
            "these examples; unlabelled texts for pool mode go in [evokd] unlabelled_pool)"
        ) from None


@registry.loggers("spacy_evokd.ProgressLogger.v1")
def make_progress_logger(console: Optional[Callable] = None) -> Callable:
    """``console`` (the config's own logger) plus one JSON line per evaluation that ``student.train``
    reads as its progress (training_progress.py): numbers, not a parsed console table."""
    from .training_progress import make_logger

    return make_logger(console)


@registry.augmenters("spacy_evokd.evolving_augmenter.v1")
def make_evolving_augmenter(
    rounds_dir: str,
    recency_decay: float = 1.0,
    max_round: Optional[int] = None,
    use_weights: bool = True,
    seed: int = 0,
):
    """For ``[corpora.train.augmenter]``: train on the corpus plus the committed rounds of an
    EvoKD run (``OUTPUT_DIR/rounds``) or a folder of selected DocBins (LLKD).

    rounds_dir (str): folder with round_NNN.spacy (+ round_NNN.json) or other .spacy files.
    recency_decay (float): round r counts ``recency_decay ** (last - r)`` (1.0: all equal).
    max_round (int): ignore rounds after this one (None: all committed rounds).
    use_weights (bool): honour ``doc.user_data["evokd"]["weight"]``.
    seed (int): for the fractional part of weights.
    """
    from .augment import EvolvingAugmenter

    return EvolvingAugmenter(rounds_dir, recency_decay, max_round, use_weights, seed)
