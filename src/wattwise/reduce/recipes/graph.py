"""Which nn.Linear (or convolution) layers can lose hidden units (channels) together, read from the dataflow graph.

A *hidden group* is one consumer ``nn.Linear`` B whose input is computed, through element-wise operations only,
from the outputs of one or more producer ``nn.Linear`` layers A₁…Aₖ whose outputs are used nowhere else: a
transformer's feed-forward block ``ff_out(gelu(ff_in(x)))``, a gated one ``down(silu(gate(x)) * up(x))``, or two
layers of an MLP. Removing hidden unit ``j`` removes row ``j`` (and bias ``j``) of every producer and column ``j``
of B; what the remaining units compute is unchanged, so the layers really shrink and the model stays correct.
Convolutions (groups=1) form groups the same way over their channels, through element-wise ops, per-channel
pooling and BatchNorm layers (which lose the same channels).

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
    """Producers (module paths) whose ``width`` outputs feed, element-wise, the consumer's ``width`` inputs;
    ``norms``: BatchNorm modules on the way (convolutions only), which lose the same channels."""

    producers: tuple[str, ...]
    consumer: str
    width: int
    norms: tuple[str, ...] = ()


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
# per-channel for convolutions (dim 1), but they would mix a Linear's hidden units (the last dim): conv only
_CHANNELWISE = {
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
}
_BATCH_NORMS = {"batch_norm", "_native_batch_norm_legit_no_training"}
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def hidden_groups(model: nn.Module, example_inputs: tuple[Any, ...]) -> tuple[list[HiddenGroup], str]:
    """The model's hidden groups and how they were found (``"graph"`` or ``"module tree"``)."""
    try:
        return _from_graph(model, example_inputs), "graph"
    except Exception:  # any export failure means: read the module tree instead
        return _from_module_tree(model), "module tree"


def _from_graph(model: nn.Module, example_inputs: tuple[Any, ...]) -> list[HiddenGroup]:
    with third_party_warnings(), torch.no_grad():
        program = torch.export.export(model.eval(), tuple(example_inputs), strict=False)
    owners = {**program.graph_signature.inputs_to_parameters, **program.graph_signature.inputs_to_buffers}
    graph = program.graph_module.graph
    layer_ops = (
        torch.ops.aten.linear.default,
        torch.ops.aten.conv1d.default,
        torch.ops.aten.conv2d.default,
        torch.ops.aten.conv3d.default,
    )

    def owner(arg: Any) -> str | None:
        """The module path a parameter or buffer placeholder belongs to."""
        if not isinstance(arg, torch.fx.Node) or arg.op != "placeholder" or arg.name not in owners:
            return None
        return str(owners[arg.name]).rpartition(".")[0]

    def module_of(node: torch.fx.Node) -> str | None:
        """The layer whose weight this aten.linear/convNd node reads, when it is a plain float one (groups=1)."""
        weight = node.args[1] if len(node.args) > 1 else None
        path = owner(weight)
        if path is None or not isinstance(weight, torch.fx.Node) or not owners[weight.name].endswith("weight"):
            return None
        try:
            module = model.get_submodule(path)
        except AttributeError:
            return None
        return path if _plain_layer(module) else None

    linears: dict[torch.fx.Node, str] = {}
    uses: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target in layer_ops:
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
        conv = isinstance(model.get_submodule(consumer_path), _CONVS)
        found = _trace_back(source, single, conv)
        if found is None:
            continue
        producers, inner, norm_nodes = found
        members = inner | set(producers)
        if any(user not in members and user is not consumer for node in members for user in node.users):
            continue  # a hidden value is also used elsewhere (a residual, a second consumer): cannot shrink
        if any(isinstance(model.get_submodule(single[p]), _CONVS) != conv for p in producers):
            continue  # a convolution's channels (dim 1) are not a Linear's features (the last dim)
        widths = {_width(model.get_submodule(single[p]), "out") for p in producers}
        width = _width(model.get_submodule(consumer_path), "in")
        norms = tuple(sorted({path for n in norm_nodes if (path := owner(n.args[1]) or owner(n.args[3]))}))
        if len(norms) != len(norm_nodes) or widths != {width}:
            continue
        if not all(_norm_width(model.get_submodule(path)) == width for path in norms):
            continue
        paths = tuple(sorted({single[p] for p in producers}))
        if len(paths) != len(producers) or consumer_path in paths:
            continue
        groups.append(HiddenGroup(paths, consumer_path, width, norms))
    return groups


def _trace_back(
    node: torch.fx.Node, producers: dict[torch.fx.Node, str], conv: bool
) -> tuple[list[torch.fx.Node], set[torch.fx.Node], list[torch.fx.Node]] | None:
    """From a consumer's input back through element-wise ops (and, for convolutions, per-channel pooling and
    BatchNorm) to producer layers: (producers, ops in between, batch-norm nodes)."""
    found: list[torch.fx.Node] = []
    inner: set[torch.fx.Node] = set()
    norms: list[torch.fx.Node] = []
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
        if conv and name in _BATCH_NORMS and isinstance(current.args[0], torch.fx.Node):
            norms.append(current)
            tensors = [current.args[0]]  # the others are the norm's own parameters and statistics
        elif current.target is operator.getitem and current.args[1] == 0:
            pass  # the output of a node returning (output, statistics...)
        elif (conv and name in _CHANNELWISE) or name in _UNARY:
            if len(tensors) != 1:
                return None
        elif name in _BINARY:
            if not tensors or not all(isinstance(a, int | float | bool | str) or a is None for a in others):
                return None
        else:
            return None
        inner.add(current)
        stack.extend(tensors)
    return (found, inner, norms) if found else None


def _op_name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(getattr(packet, "__name__", "")).split(".")[-1]
    if target in (operator.mul, operator.add, operator.sub, operator.truediv):
        return {operator.mul: "mul", operator.add: "add", operator.sub: "sub", operator.truediv: "div"}[target]
    return ""


def _width(module: nn.Module, side: str) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features if side == "out" else module.in_features
    assert isinstance(module, _CONVS)
    return module.out_channels if side == "out" else module.in_channels


def _norm_width(module: nn.Module) -> int | None:
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
        return int(module.num_features)
    return None


def _plain_layer(module: nn.Module) -> bool:
    """A Linear, or a Conv1d/2d/3d with groups=1, with plain float weights."""
    if isinstance(module, _CONVS) and module.groups != 1:
        return False
    return _plain_linear(module) or (
        isinstance(module, _CONVS) and type(module.weight) is nn.Parameter and module.weight.dtype.is_floating_point
    )


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
