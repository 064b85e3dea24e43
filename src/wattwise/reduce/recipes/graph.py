"""Which nn.Linear layers can lose hidden units together, read from the model's dataflow graph.

A *hidden group* is one consumer ``nn.Linear`` B whose input is computed, through element-wise operations only,
from the outputs of one or more producer ``nn.Linear`` layers A₁…Aₖ whose outputs are used nowhere else: a
transformer's feed-forward block ``ff_out(gelu(ff_in(x)))``, a gated one ``down(silu(gate(x)) * up(x))``, or two
layers of an MLP. Removing hidden unit ``j`` removes row ``j`` (and bias ``j``) of every producer and column ``j``
of B; what the remaining units compute is unchanged, so the layers really shrink and the model stays correct.

The graph comes from ``torch.export`` (non-strict) on the example inputs, so wiring inside a custom ``forward`` is
seen rather than guessed from the module tree. A model that does not export (data-dependent Python control flow)
falls back to the module tree: runs of nn.Linear inside an ``nn.Sequential`` with only element-wise modules between
them. Anything else (a residual sum, a reshape into attention heads, a normalisation over the hidden units, a
shared module) ends a group, so those layers are left as they are.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from wattwise.reduce.base import third_party_warnings


@dataclass(frozen=True, slots=True)
class HiddenGroup:
    """Producers (module paths) whose ``width`` outputs feed, element-wise, the consumer's ``width`` inputs."""

    producers: tuple[str, ...]
    consumer: str
    width: int


_ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Dropout,
    nn.AlphaDropout,
    nn.Identity,
)

# aten ops (by overload packet name) that act on each element on its own: a hidden unit stays a hidden unit
_UNARY = {
    "relu",
    "relu_",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "sigmoid",
    "tanh",
    "hardtanh",
    "hardswish",
    "hardsigmoid",
    "softplus",
    "softsign",
    "dropout",
    "alpha_dropout",
    "feature_dropout",
    "clone",
    "neg",
    "square",
    "pow",
    "exp",
    "abs",
    "erf",
    "detach",
    "contiguous",
}
_BINARY = {"mul", "add", "sub", "div", "maximum", "minimum"}  # both operands from the group, or one a scalar


def hidden_groups(model: nn.Module, example_inputs: tuple[Any, ...]) -> tuple[list[HiddenGroup], str]:
    """The model's hidden groups and how they were found (``"graph"`` or ``"module tree"``)."""
    try:
        return _from_graph(model, example_inputs), "graph"
    except Exception:  # any export failure means: read the module tree instead
        return _from_module_tree(model), "module tree"


def _from_graph(model: nn.Module, example_inputs: tuple[Any, ...]) -> list[HiddenGroup]:
    with third_party_warnings(), torch.no_grad():
        program = torch.export.export(model.eval(), tuple(example_inputs), strict=False)
    parameters = program.graph_signature.inputs_to_parameters
    graph = program.graph_module.graph
    linear_ops = (torch.ops.aten.linear.default,)

    def module_of(node: torch.fx.Node) -> str | None:
        """The nn.Linear path whose weight this aten.linear node reads, when it is a plain float Linear."""
        weight = node.args[1] if len(node.args) > 1 else None
        if not isinstance(weight, torch.fx.Node) or weight.op != "placeholder" or weight.name not in parameters:
            return None
        fqn = parameters[weight.name]
        if not fqn.endswith(".weight") and fqn != "weight":
            return None
        path = fqn[: -len("weight")].rstrip(".")
        try:
            module = model.get_submodule(path)
        except AttributeError:
            return None
        return path if _plain_linear(module) else None

    linears: dict[torch.fx.Node, str] = {}
    uses: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target in linear_ops:
            path = module_of(node)
            if path is not None:
                linears[node] = path
                uses[path] = uses.get(path, 0) + 1
    single = {node: path for node, path in linears.items() if uses[path] == 1}

    groups: list[HiddenGroup] = []
    for consumer, consumer_path in single.items():
        source = consumer.args[0]
        if not isinstance(source, torch.fx.Node):
            continue
        found = _trace_back(source, single)
        if found is None:
            continue
        producers, inner = found
        members = inner | set(producers)
        if any(user not in members and user is not consumer for node in members for user in node.users):
            continue  # a hidden value is also used elsewhere (a residual, a second consumer): cannot shrink
        widths = {_linear(model, single[p]).out_features for p in producers}
        width = _linear(model, consumer_path).in_features
        if widths != {width}:
            continue
        paths = tuple(sorted({single[p] for p in producers}))
        if len(paths) != len(producers) or consumer_path in paths:
            continue
        groups.append(HiddenGroup(paths, consumer_path, width))
    return groups


def _trace_back(
    node: torch.fx.Node, producers: dict[torch.fx.Node, str]
) -> tuple[list[torch.fx.Node], set[torch.fx.Node]] | None:
    """From a consumer's input back through element-wise ops to producer Linears: (producers, ops in between)."""
    found: list[torch.fx.Node] = []
    inner: set[torch.fx.Node] = set()
    stack = [node]
    seen: set[torch.fx.Node] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in producers:
            found.append(current)
            continue
        if current.op != "call_function":
            return None
        name = _op_name(current.target)
        tensors = [a for a in (*current.args, *current.kwargs.values()) if isinstance(a, torch.fx.Node)]
        others = [a for a in (*current.args, *current.kwargs.values()) if not isinstance(a, torch.fx.Node)]
        if name in _UNARY:
            if len(tensors) != 1:
                return None
        elif name in _BINARY:
            if not tensors or not all(isinstance(a, int | float | bool | str) or a is None for a in others):
                return None
        else:
            return None
        inner.add(current)
        stack.extend(tensors)
    return (found, inner) if found else None


def _op_name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(getattr(packet, "__name__", "")).split(".")[-1]
    if target in (operator.mul, operator.add, operator.sub, operator.truediv):
        return {operator.mul: "mul", operator.add: "add", operator.sub: "sub", operator.truediv: "div"}[target]
    return ""


def _linear(model: nn.Module, path: str) -> nn.Linear:
    module = model.get_submodule(path)
    assert isinstance(module, nn.Linear)
    return module


def _plain_linear(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Linear) and type(module.weight) is nn.Parameter and module.weight.dtype.is_floating_point
    )


def _from_module_tree(model: nn.Module) -> list[HiddenGroup]:
    """Linear→Linear pairs inside an nn.Sequential, joined only by element-wise modules (the fallback)."""
    counts: dict[int, int] = {}  # a module reachable twice (shared) is left alone
    for _, module in model.named_modules(remove_duplicate=False):
        counts[id(module)] = counts.get(id(module), 0) + 1
    groups: list[HiddenGroup] = []
    for path, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        prefix = f"{path}." if path else ""
        previous: int | None = None
        for index, child in enumerate(seq):
            if _plain_linear(child) and counts[id(child)] == 1:
                assert isinstance(child, nn.Linear)
                before = seq[previous] if previous is not None else None
                if isinstance(before, nn.Linear) and before.out_features == child.in_features:
                    groups.append(HiddenGroup((f"{prefix}{previous}",), f"{prefix}{index}", child.in_features))
                previous = index
            elif not isinstance(child, _ELEMENTWISE_MODULES):
                previous = None
    return groups


__all__ = ["HiddenGroup", "hidden_groups"]
