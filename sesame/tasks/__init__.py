"""Downstream tasks on the ``Task`` seam, registered by name (``register("task", ...)``):
``classification``, ``tagging``, ``qa``, ``multiple_choice``, ``seq2seq``; their
metrics, readers for the real labeled sets, and evaluation reports.

    task = get("task", "classification")(tokenizer, labels=data.labels, options={"max_length": 128})
    module = task.wrap(pretrained_model)        # or task.build(model_config)
    batch = task.transform({"examples": data.examples[:32]}, rng)
    out = module(batch)                          # TaskOutput(loss sum, count, metrics)
    result = task.evaluate(module, dev.examples, batch_size=32, report_dir="run/eval")"""
from sesame.tasks.base import IGNORE, FinetuneTask
from sesame.tasks.classification import Classification
from sesame.tasks.examples import Answer, ChoiceExample, Dataset, PairExample, QAExample, TagExample, TextExample
from sesame.tasks.multiple_choice import MultipleChoice
from sesame.tasks.qa import QuestionAnswering
from sesame.tasks.seq2seq import Seq2Seq
from sesame.tasks.tagging import Tagging

__all__ = [
    "IGNORE", "FinetuneTask", "Classification", "Tagging", "QuestionAnswering", "MultipleChoice", "Seq2Seq",
    "TextExample", "TagExample", "QAExample", "Answer", "ChoiceExample", "PairExample", "Dataset",
]
