"""Loading a model from what a user can type: a zoo name, ``module:function``, ``file.py:function``, a
TorchScript file, or a state dict with the function that builds its network (``arch``). State dicts are
read with ``torch.load(weights_only=True)``; full pickles are refused unless ``trust_pickle``."""
from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

from .._utils.errors import UsageError, one_line

__all__ = ["class_names", "load_callable", "load_model_spec"]


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function`` -> the function (attribute paths allowed)."""
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"{spec!r} is not of the form module:function")
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"cannot load {spec!r}: no such file {module_name!r}")
            unique = "_unmask_user_" + re.sub(r"\W", "_", str(path.resolve()))
            module_spec = importlib.util.spec_from_file_location(unique, path)
            if module_spec is None or module_spec.loader is None:
                raise UsageError(f"cannot load {spec!r}: {module_name!r} is not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[unique] = module
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except UsageError:
        raise
    except AttributeError as error:
        raise UsageError(f"cannot load {spec!r}: {one_line(error)}") from None
    except Exception as error:  # the user's module failed to import: report it, no traceback
        raise UsageError(f"cannot load {spec!r}: {type(error).__name__}: {one_line(error)}") from None
    if not callable(target):
        raise UsageError(f"{spec!r} is not callable (a {type(target).__name__})")
    return target


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _pickled_globals(path: Path, error: Exception) -> str | None:
    """What a torch.save file that ``weights_only`` refused needs to import, or ``None`` if it is no such file."""
    try:
        from torch.serialization import get_unsafe_globals_in_checkpoint

        names = get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # older torch, or a legacy (non-zip) file
        names = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if not names:
        return None
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _unwrap_state_dict(obj: Any) -> Any:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _build(factory_spec: str) -> Any:
    factory = load_callable(factory_spec)
    try:
        return factory()
    except Exception as error:
        raise UsageError(f"{factory_spec!r} failed: {type(error).__name__}: {one_line(error)}") from None


def load_model_spec(
    spec: str,
    *,
    arch: str | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
    image_size: int = 224,
    classes: str | None = None,
) -> "Any":
    """Resolve a ``--model`` spec to a :class:`unmask.zoo.ZooModel` in eval mode on ``device``."""
    import torch
    from torch import nn

    from . import zoo

    if spec in zoo.names():
        if arch:
            raise UsageError(f"--arch is for state-dict files, not the zoo model {spec!r}")
        try:
            return zoo.load(spec, device=device)
        except ImportError as error:
            raise UsageError(f"cannot load {spec!r}: {one_line(error)}") from None

    path = Path(spec)
    if path.is_file():
        if _is_torchscript(path):
            if arch:
                raise UsageError(f"{spec} is a TorchScript file; it needs no --arch")
            try:
                with warnings.catch_warnings():  # torch 2.10+ calls TorchScript deprecated; it is still the user's file
                    warnings.simplefilter("ignore", DeprecationWarning)
                    model = torch.jit.load(str(path), map_location=device)
            except Exception as error:
                raise UsageError(f"cannot load TorchScript file {spec}: {one_line(error)}") from None
        else:
            try:
                obj = torch.load(str(path), map_location=device, weights_only=True)
            except pickle.UnpicklingError as error:
                needs = _pickled_globals(path, error)
                if needs is None:
                    raise UsageError(f"cannot load {spec}: not a TorchScript file nor a file written by torch.save") from None
                if not trust_pickle:
                    raise UsageError(
                        f"{spec} is a full pickle (of {needs}), which can run arbitrary code when loaded; save a state dict "
                        "(torch.save(model.state_dict(), ...)) or TorchScript instead, or pass --trust-pickle "
                        "if you trust the file"
                    ) from None
                try:
                    obj = torch.load(str(path), map_location=device, weights_only=False)
                except Exception as error:
                    raise UsageError(f"cannot load {spec}: {one_line(error)}") from None
            except Exception as error:
                raise UsageError(
                    f"cannot load {spec}: not a TorchScript file nor a file written by torch.save "
                    f"({type(error).__name__}: {one_line(error)})"
                ) from None
            if isinstance(obj, nn.Module):
                if arch:
                    raise UsageError(f"{spec} holds a whole model; it needs no --arch")
                model = obj
            else:
                state = _unwrap_state_dict(obj)
                if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                    raise UsageError(f"{spec} holds a {type(obj).__name__}, neither a model nor a state dict")
                if not arch:
                    raise UsageError(f"{spec} is a state dict; name the network it belongs to with --arch module:function")
                model = _build(arch)
                if not isinstance(model, nn.Module):
                    raise UsageError(f"--arch {arch!r} returned a {type(model).__name__}, not a torch.nn.Module")
                if state and all(k.startswith("module.") for k in state):
                    state = {k[len("module."):]: v for k, v in state.items()}
                try:
                    model.load_state_dict(state, strict=True)
                except RuntimeError as error:
                    raise UsageError(f"the state dict {spec} does not fit --arch {arch!r}: {one_line(error)}") from None
    elif ":" in spec:
        if arch:
            raise UsageError("--arch is for state-dict files given as --model")
        model = _build(spec)
        if isinstance(model, zoo.ZooModel):
            model.model.eval()
            return model.to(device)
        if not isinstance(model, nn.Module):
            raise UsageError(f"{spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    else:
        raise UsageError(
            f"unknown model {spec!r}: not a zoo model ({', '.join(zoo.names())}), not an existing file, "
            "and not of the form module:function"
        )
    model = model.to(device).eval()
    name = path.name if path.is_file() else spec
    return zoo.ZooModel(
        name=name,
        model=model,
        classes=class_names(classes),
        preprocessing=zoo.Preprocessing(size=image_size, resize=max(image_size, round(image_size * 256 / 224))),
        description=f"{type(model).__name__} from {spec}",
    )


def class_names(classes: str | None) -> list[str]:
    """Class names from ``classes``: ``None`` (none), ``"imagenet"`` (the ImageNet-1k list) or a file, one per line."""
    from . import zoo

    if classes is None:
        return []
    if classes == "imagenet":
        return list(zoo.imagenet_classes())
    try:
        return [line.strip() for line in Path(classes).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read --classes {classes}: {one_line(error)}") from None
