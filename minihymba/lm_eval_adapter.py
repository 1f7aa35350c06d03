"""Evaluate a minihymba checkpoint with EleutherAI's lm-evaluation-harness (``pip install -e ".[eval]"``).

Importing this module imports ``lm_eval`` and registers :class:`MinihymbaLM` under the model name
``"minihymba"``; ``import minihymba`` never imports it. Without lm_eval the import fails with a
``ModuleNotFoundError`` naming the ``eval`` extra (the command line prints that one line). lm_eval
0.4.13 looks models up only in its own registry (no plugin entry points; ``--include_path`` adds tasks,
not models), so the plain ``lm_eval`` command cannot see this model. Run this module instead: it
registers the model, then hands the same arguments to lm_eval's own command line::

    python -m minihymba.lm_eval_adapter --model minihymba \\
        --model_args pretrained=nvidia/Hymba-1.5B-Base,dtype=bfloat16 --tasks arc_easy --batch_size 8

    # offline, from the repository root: the tiny fixture on a local six-question task
    python -m minihymba.lm_eval_adapter --model minihymba --device cpu \\
        --model_args pretrained=tests/fixtures/hymba-tiny-a,tokenizer=tests/fixtures/tokenizer-tiny \\
        --tasks minihymba_tiny_mc --include_path tests/fixtures/lm_eval_tasks

From Python: ``import minihymba.lm_eval_adapter``, then ``lm_eval.simple_evaluate(model="minihymba",
model_args="pretrained=...", tasks=[...])``.

model_args: ``pretrained`` (hub id or local directory), ``tokenizer`` (default: ``pretrained``),
``dtype`` (default float32 on CPU, bfloat16 elsewhere), ``device`` (default cuda when there is one,
else cpu), ``batch_size`` (an integer; ``auto`` is not supported), ``max_length`` (text tokens per
forward; default ``max_position_embeddings - num_meta_tokens``). On the command line, give
``--batch_size`` / ``--device`` as lm_eval flags rather than inside ``--model_args``; without
``--device`` it runs on cuda when there is one, else cpu (lm_eval's own default is cuda:0). A
``pretrained`` or ``tokenizer`` that cannot be found raises :class:`ModelNotFoundError` (a
``FileNotFoundError``); the command line prints its message in one line and exits with status 1.

The three request types:

* ``loglikelihood(context, continuation)``: encode ``context + continuation`` (the tokenizer adds BOS),
  split where ``encode(context)`` ends, run one forward over all but the last token and add up the
  log-softmax of the continuation's tokens; ``is_greedy``: each of them was the argmax. An empty
  context is the BOS token alone.
* ``loglikelihood_rolling(text)``: the text's tokens (no BOS) after a BOS prefix, cut into windows of
  ``max_length`` tokens (lm_eval's rolling windows); every token is scored exactly once.
* ``generate_until(context, gen_kwargs)``: ``model.generate`` (greedy unless ``do_sample``), stopped as
  soon as every row has produced EOS or one of the ``until`` strings; the text is cut before the first.

Requests run ``batch_size`` at a time, longest first, left-padded with an ``attention_mask`` (padding is
exact in minihymba: a padded row scores and generates what it would alone). Chat templates
(``--apply_chat_template``) are not implemented.

Shapes: ids, mask (B, T) with T <= max_length; logits and log-probs (B, T, V) float32; the scored
columns of one row (n, V) with n = len(continuation).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from .generation import left_pad
from .loading import load_pretrained
from .tokenizer import load_tokenizer

MISSING_EXTRA = (
    "minihymba.lm_eval_adapter needs lm-evaluation-harness, which is not installed: "
    'pip install -e ".[eval]" (from the repository root), or pip install "lm_eval>=0.4.13"'
)

try:
    import lm_eval.models  # noqa: F401  -- built-in names first: get_model only adds them to an empty registry
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ModuleNotFoundError as err:  # lm_eval itself missing (not one of its own imports failing)
    if (err.name or "").partition(".")[0] != "lm_eval":
        raise
    if __name__ == "__main__":  # the command line: one line, no traceback
        sys.exit(f"error: {MISSING_EXTRA}")
    raise ModuleNotFoundError(MISSING_EXTRA, name="lm_eval") from None

__all__ = ["MinihymbaLM", "ModelNotFoundError", "MISSING_EXTRA", "main"]

log = logging.getLogger(__name__)

# (request args or None, context ids, continuation ids): what TemplateLM hands to _loglikelihood_tokens
TokenRequest = tuple[Any, list[int], list[int]]


class ModelNotFoundError(FileNotFoundError):
    """``pretrained`` or ``tokenizer`` names no local directory and no hub model that can be fetched."""


def best_device() -> str:
    """The device used when none is given: ``"cuda"`` when there is one, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_device(device: str | None) -> torch.device:
    """The requested device (default: :func:`best_device`), but cpu for cuda on a machine without it."""
    has_cuda = torch.cuda.is_available()
    if device is None:
        return torch.device(best_device())
    if device.startswith("cuda") and not has_cuda:
        log.warning("device %r requested but CUDA is not available: running on cpu", device)
        return torch.device("cpu")
    return torch.device(device)


class _StopGeneration(Exception):
    """Raised by the streamer once every row is finished: ends ``model.generate`` early."""


@register_model("minihymba")
class MinihymbaLM(TemplateLM):
    """A minihymba :class:`~minihymba.HymbaForCausalLM` and its tokenizer behind lm_eval's ``LM`` API."""

    def __init__(
        self,
        pretrained: str,
        tokenizer: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int | str | None = 1,
        max_length: int | None = None,
        max_batch_size: int | None = None,  # passed by lm_eval for batch_size=auto; unused here
    ) -> None:
        super().__init__()
        if str(batch_size).startswith("auto"):
            raise ValueError("minihymba: batch_size=auto is not supported; give an integer (--batch_size 8)")
        self.batch_size = int(batch_size or 1)
        self._device = _pick_device(device)
        if dtype in (None, "auto"):
            dtype = "float32" if self._device.type == "cpu" else "bfloat16"
        try:
            self.model = load_pretrained(pretrained, dtype=dtype, device=self._device)
            self.tokenizer = load_tokenizer(tokenizer or pretrained)
        except FileNotFoundError as err:
            raise ModelNotFoundError(str(err)) from err
        config = self.model.config
        self.max_length = int(max_length or config.max_position_embeddings - config.num_meta_tokens)
        self.pad_id = config.pad_token_id or 0  # any id: padded columns are masked out

    @property
    def device(self) -> torch.device:
        return self._device

    # ------------------------------------------------------------------ tokens

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        """What an empty context becomes: BOS (EOS if the tokenizer has none)."""
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """Token ids; by default with the tokenizer's special tokens (BOS) unless the text starts with BOS."""
        if add_special_tokens is None:
            bos = self.tokenizer.bos_token
            add_special_tokens = not (bos and string.startswith(bos))
        return self.tokenizer.encode(string, add_special_tokens=add_special_tokens)

    def tok_decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------ scoring

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Tokenise each (context, continuation) pair, then score the tokens (``_loglikelihood_tokens``).

        A context is split off with lm_eval's ``_encode_pair``; an empty one becomes the BOS token alone,
        written out here because older lm_eval releases put a second BOS after it.
        """
        token_requests = []
        for context, continuation in [req.args for req in requests]:
            if context:
                context_ids, continuation_ids = self._encode_pair(context, continuation)
            else:
                context_ids = [self.prefix_token_id]
                continuation_ids = self.tok_encode(continuation, add_special_tokens=False)
                if continuation_ids[:1] == context_ids:  # the text itself starts with BOS
                    continuation_ids = continuation_ids[1:]
            token_requests.append(((context, continuation), context_ids, continuation_ids))
        return self._loglikelihood_tokens(token_requests, disable_tqdm=disable_tqdm)

    @torch.no_grad()
    def _loglikelihood_tokens(
        self, requests: list[TokenRequest], disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        """(sum of log-probs of the continuation, whether greedy decoding gives it) for each request."""
        results: list[tuple[float, bool]] = [(0.0, True)] * len(requests)  # empty continuations stay so
        rows = []  # (request index, input ids, target ids): the targets are the inputs' last n next tokens
        for i, (_, context, continuation) in enumerate(requests):
            if len(continuation) > self.max_length:
                raise ValueError(f"continuation of {len(continuation)} tokens > max_length {self.max_length}")
            if continuation:
                ids = (context + continuation)[-(self.max_length + 1) :]  # keep the end of the context
                rows.append((i, ids[:-1], continuation))
        rows.sort(key=lambda row: -len(row[1]))  # longest first: similar lengths share a batch
        for start in tqdm(range(0, len(rows), self.batch_size), disable=disable_tqdm, desc="minihymba ll"):
            batch = rows[start : start + self.batch_size]
            ids, mask = left_pad([inputs for _, inputs, _ in batch], self.pad_id, self.device)
            logprobs = self.model(ids, mask).logits.log_softmax(-1)  # (B, T, V)
            for b, (i, _, targets) in enumerate(batch):
                scores = logprobs[b, -len(targets) :]  # (n, V): left padding puts every row's end last
                target = torch.tensor(targets, device=scores.device)  # (n,)
                logprob = scores.gather(-1, target[:, None]).sum().item()
                results[i] = (logprob, bool((scores.argmax(-1) == target).all()))
        for (args, _, _), result in zip(requests, results, strict=True):
            if args is not None:
                self.cache_hook.add_partial("loglikelihood", args, result)
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of each whole text (after a BOS prefix), in max_length windows."""
        results = []
        for (text,) in tqdm([req.args for req in requests], disable=disable_tqdm, desc="minihymba rolling"):
            tokens = self.tok_encode(text, add_special_tokens=False)
            windows = get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1)
            pairs = [(None, *make_disjoint_window(window)) for window in windows]
            total = sum(logprob for logprob, _ in self._loglikelihood_tokens(pairs, disable_tqdm=True))
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            results.append(total)
        return results

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled) continuations, each cut before its first stop string."""
        results = [""] * len(requests)
        groups: dict[str, list[int]] = {}  # requests with the same gen_kwargs share batches
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc="minihymba generate")
        for indices in groups.values():
            gen = dict(requests[indices[0]].args[1])
            until = gen.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen.pop("max_gen_toks", gen.pop("max_new_tokens", 256)))  # lm_eval's default: 256
            temperature = float(gen.pop("temperature", 0.0))
            sampling = {"do_sample": bool(gen.pop("do_sample", temperature > 0))}
            if sampling["do_sample"]:
                sampling |= {
                    "temperature": temperature or 1.0,
                    "top_k": gen.pop("top_k", None),
                    "top_p": gen.pop("top_p", None),
                }
            if gen:
                log.warning("minihymba ignores these generation arguments: %s", sorted(gen))
            keep = max(self.max_length - max_new, 1)  # prompt tokens kept (the end of the context)
            prompts = {i: self.tok_encode(requests[i].args[0])[-keep:] for i in indices}
            order = sorted(indices, key=lambda i: -len(prompts[i]))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                texts = self._generate([prompts[i] for i in batch], until, max_new, **sampling)
                for i, text in zip(batch, texts, strict=True):
                    results[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                progress.update(len(batch))
        progress.close()
        return results

    def _generate(
        self, prompts: list[list[int]], until: list[str], max_new_tokens: int, **sampling: Any
    ) -> list[str]:
        """Continue left-padded prompts with ``model.generate``; each text ends before EOS / a stop string."""
        ids, mask = left_pad(prompts, self.pad_id, self.device)
        eos = self.eot_token_id
        new: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)

        def watch(step_ids: Tensor) -> None:  # the streamer: one new id per row each step
            for row, token in enumerate(step_ids.tolist()):
                if not done[row]:
                    new[row].append(token)
                    done[row] = token == eos or any(stop in self.tok_decode(new[row]) for stop in until)
            if all(done):
                raise _StopGeneration

        try:
            self.model.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=self.pad_id,
                streamer=watch,
                **sampling,
            )
        except _StopGeneration:
            pass
        texts = []
        for tokens in new:
            text = self.tok_decode(tokens[: tokens.index(eos)] if eos in tokens else tokens)
            for stop in until:
                text = text.split(stop)[0]  # in turn for each stop: what precedes the earliest one
            texts.append(text)
        return texts


def with_default_device(argv: list[str]) -> list[str]:
    """The arguments of an evaluation with ``--device`` :func:`best_device` added when they name no device
    (lm_eval's own default is cuda:0, even on a machine without CUDA). A ``--config`` file keeps its say;
    help and lm_eval's other commands (``ls``, ``validate``) are left as they are."""
    if not argv or argv[0] in ("ls", "validate") or "-h" in argv or "--help" in argv:
        return argv
    given = any(arg in ("--device", "--config") or arg.startswith(("--device=", "--config=")) for arg in argv)
    return argv if given else [*argv, "--device", best_device()]


def main(argv: list[str] | None = None) -> int:
    """``python -m minihymba.lm_eval_adapter <lm_eval arguments>``: lm_eval's CLI, "minihymba" registered.

    Without ``--device`` the model runs on :func:`best_device`. A model that cannot be found ends in one
    line on stderr and exit status 1.
    """
    from lm_eval.__main__ import cli_evaluate

    args = sys.argv[1:] if argv is None else argv
    saved = sys.argv
    sys.argv = [saved[0], *with_default_device(args)]  # lm_eval's CLI reads sys.argv
    try:
        cli_evaluate()
    except ModelNotFoundError as err:
        print(f"minihymba.lm_eval_adapter: error: {err}", file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
