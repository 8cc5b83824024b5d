"""onnxruntime's com.microsoft schemas of the ops qdqc writes, registered with onnx.

onnx knows no com.microsoft schema: `onnx.checker.check_model(model, full_check=True)` skips
com.microsoft nodes (no attribute, arity or type check) and its shape inference leaves their
outputs untyped. `register()` adds, for QLinearAdd, QLinearMul, QLinearGlobalAveragePool,
QLinearAveragePool, QLinearConcat, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax and QGemm
(com.microsoft opset 1), the inputs, outputs, type constraints and attributes of onnxruntime's
registered schemas (docs/ContribOperators.md of onnxruntime) and an inference function that

  - refuses a scale or zero point of known rank other than 0 where the schema says "It's a
    scalar" / "It must be a scalar" (onnxruntime's own inference refuses a `[1]` for QLinearAdd
    and QLinearMul: "Scale and Zero-point must be a scalar");
  - refuses a zero point whose element type is not the quantized tensor's;
  - types the output (and gives its shape where it follows from the input's), so that strict
    shape inference checks the ONNX nodes after it.

`python scripts/ms_schemas.py` runs a self-test (in CI): well-formed nodes pass, and the checker
refuses what onnxruntime 1.32 refuses at load.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, defs
from onnx.defs import OpSchema

DOMAIN = "com.microsoft"
T8 = ["tensor(uint8)", "tensor(int8)"]
F32 = "tensor(float)"
P = OpSchema.FormalParameter
OPT = OpSchema.FormalParameterOption.Optional
VAR = OpSchema.FormalParameterOption.Variadic
A = OpSchema.AttrType


def _fail(ctx, msg: str):
    raise onnx.shape_inference.InferenceError(f"[{DOMAIN}] {msg}")


def _type(ctx, i: int):
    if i >= ctx.get_num_inputs() or not ctx.has_input(i):
        return None
    t = ctx.get_input_type(i)
    return t if t is not None and t.HasField("tensor_type") else None


def _check_params(ctx, op: str, scalars: dict[int, str], zero_points: dict[int, int]):
    """Each input in `scalars` (index: name) of known shape has rank 0; each zero point in
    `zero_points` (index: index of its quantized tensor) has that tensor's element type."""
    for i, name in scalars.items():
        t = _type(ctx, i)
        if t is not None and t.tensor_type.HasField("shape") and len(t.tensor_type.shape.dim) != 0:
            dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in t.tensor_type.shape.dim]
            _fail(ctx, f"{op}: input {i} ({name}) must be a scalar, has shape {dims}")
    for z, x in zero_points.items():
        tz, tx = _type(ctx, z), _type(ctx, x)
        if tz is not None and tx is not None and tz.tensor_type.elem_type != tx.tensor_type.elem_type:
            _fail(
                ctx,
                f"{op}: zero point (input {z}) is {TensorProto.DataType.Name(tz.tensor_type.elem_type)} but its "
                f"tensor (input {x}) is {TensorProto.DataType.Name(tx.tensor_type.elem_type)}",
            )


def _set_output(ctx, elem_type: int, dims=None):
    out = onnx.TypeProto()
    out.tensor_type.elem_type = elem_type
    if dims is not None:
        shape = out.tensor_type.shape
        for d in dims:
            nd = shape.dim.add()
            if d.HasField("dim_value"):
                nd.dim_value = d.dim_value
            elif d.dim_param:
                nd.dim_param = d.dim_param
    ctx.set_output_type(0, out)


def _dims(t):
    return list(t.tensor_type.shape.dim) if t is not None and t.tensor_type.HasField("shape") else None


def _broadcast(a, b):
    """numpy broadcasting of two dim lists (None when a dim is unknown and not settled by 1s)."""
    if a is None or b is None:
        return None
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else None
        db = b[len(b) - 1 - i] if i < len(b) else None
        va = da.dim_value if da is not None and da.HasField("dim_value") else None
        vb = db.dim_value if db is not None and db.HasField("dim_value") else None
        if da is None or va == 1:
            pick = db
        elif db is None or vb == 1:
            pick = da
        elif va is not None and vb is not None:
            if va != vb:
                return None
            pick = da
        else:
            return None
        out.append(pick)
    return list(reversed(out))


def _schema(name, inputs, outputs, constraints, attrs, infer) -> OpSchema:
    s = OpSchema(
        name,
        DOMAIN,
        1,
        inputs=inputs,
        outputs=outputs,
        type_constraints=constraints,
        attributes=[OpSchema.Attribute(n, t, required=r) for n, t, r in attrs],
    )
    s.set_type_and_shape_inference_function(infer)
    return s


def _binary(op):
    def infer(ctx):
        names = {1: "A_scale", 2: "A_zero_point", 4: "B_scale", 5: "B_zero_point", 6: "C_scale", 7: "C_zero_point"}
        _check_params(ctx, op, names, {2: 0, 5: 3, 7: 0})
        a, b = _type(ctx, 0), _type(ctx, 3)
        if a is not None:
            _set_output(ctx, a.tensor_type.elem_type, _broadcast(_dims(a), _dims(b)))

    inputs = [
        P("A", "T"),
        P("A_scale", F32),
        P("A_zero_point", "T", param_option=OPT),
        P("B", "T"),
        P("B_scale", F32),
        P("B_zero_point", "T", param_option=OPT),
        P("C_scale", F32),
        P("C_zero_point", "T", param_option=OPT),
    ]
    return _schema(op, inputs, [P("C", "T")], [("T", T8, "")], [], infer)


def _unary(op, attrs, zero_points_optional=(True, True), same_shape=True):
    """X, X_scale, X_zero_point, Y_scale, Y_zero_point → Y."""

    def infer(ctx):
        _check_params(ctx, op, {1: "x_scale", 2: "x_zero_point", 3: "y_scale", 4: "y_zero_point"}, {2: 0, 4: 0})
        x = _type(ctx, 0)
        if x is None:
            return
        dims = _dims(x) if same_shape else None
        if op == "QLinearGlobalAveragePool" and _dims(x) is not None and len(_dims(x)) >= 2:
            channels_last = ctx.get_attribute("channels_last")
            if channels_last is None or channels_last.i == 0:
                one = onnx.TensorShapeProto.Dimension(dim_value=1)
                dims = _dims(x)[:2] + [one] * (len(_dims(x)) - 2)
        _set_output(ctx, x.tensor_type.elem_type, dims)

    xz, yz = (OPT if o else OpSchema.FormalParameterOption.Single for o in zero_points_optional)
    inputs = [
        P("X", "T"),
        P("X_scale", F32),
        P("X_zero_point", "T", param_option=xz),
        P("Y_scale", F32),
        P("Y_zero_point", "T", param_option=yz),
    ]
    return _schema(op, inputs, [P("Y", "T")], [("T", T8, "")], attrs, infer)


def _concat(ctx):
    n = ctx.get_num_inputs()
    if n < 5 or (n - 2) % 3 != 0:
        _fail(ctx, f"QLinearConcat: {n} inputs, expected 2 + 3 per concatenated tensor")
    scalars = {0: "Y_scale", 1: "Y_zero_point"}
    zps = {}
    for k, i in enumerate(range(2, n, 3)):
        scalars[i + 1], scalars[i + 2] = f"scale of input {k}", f"zero point of input {k}"
        zps[i + 2] = i
    _check_params(ctx, "QLinearConcat", scalars, zps)
    y = _type(ctx, 1)
    for i in range(2, n, 3):
        x = _type(ctx, i)
        if x is not None and y is not None and x.tensor_type.elem_type != y.tensor_type.elem_type:
            _fail(ctx, f"QLinearConcat: input {i} is not of Y_zero_point's type")
    if y is not None:
        _set_output(ctx, y.tensor_type.elem_type)


def _qgemm(ctx):
    # b_scale and b_zero_point may be per column (rank 1); the others are scalars.
    _check_params(ctx, "QGemm", {1: "a_scale", 2: "a_zero_point", 7: "y_scale", 8: "y_zero_point"}, {2: 0, 5: 3})
    for i, name in [(4, "b_scale"), (5, "b_zero_point")]:
        t = _type(ctx, i)
        if t is not None and t.tensor_type.HasField("shape") and len(t.tensor_type.shape.dim) > 1:
            _fail(ctx, f"QGemm: input {i} ({name}) must be a scalar or 1-D")
    yz = _type(ctx, 8)
    _set_output(ctx, yz.tensor_type.elem_type if yz is not None else TensorProto.FLOAT)


def schemas() -> list[OpSchema]:
    pool_attrs = [
        ("auto_pad", A.STRING, False),
        ("ceil_mode", A.INT, False),
        ("channels_last", A.INT, False),
        ("count_include_pad", A.INT, False),
        ("kernel_shape", A.INTS, True),
        ("pads", A.INTS, False),
        ("strides", A.INTS, False),
    ]
    qgemm = _schema(
        "QGemm",
        [
            P("A", "TA"),
            P("a_scale", "T"),
            P("a_zero_point", "TA"),
            P("B", "TB"),
            P("b_scale", "T"),
            P("b_zero_point", "TB"),
            P("C", "TC", param_option=OPT),
            P("y_scale", "T", param_option=OPT),
            P("y_zero_point", "TYZ", param_option=OPT),
        ],
        [P("Y", "TY")],
        [
            ("T", [F32], ""),
            ("TA", T8, ""),
            ("TB", T8, ""),
            ("TC", ["tensor(int32)"], ""),
            ("TYZ", T8, ""),
            ("TY", [F32] + T8, ""),
        ],
        [("transA", A.INT, False), ("transB", A.INT, False), ("alpha", A.FLOAT, False)],
        _qgemm,
    )
    concat = _schema(
        "QLinearConcat",
        [P("Y_scale", "TF"), P("Y_zero_point", "T8"), P("inputs", "TV", param_option=VAR, is_homogeneous=False)],
        [P("Y", "T8")],
        [("T8", T8, ""), ("TF", [F32], ""), ("TV", T8 + [F32], "")],
        [("axis", A.INT, True)],
        _concat,
    )
    return [
        _binary("QLinearAdd"),
        _binary("QLinearMul"),
        _unary("QLinearGlobalAveragePool", [("channels_last", A.INT, False)], (False, False), same_shape=False),
        _unary("QLinearAveragePool", pool_attrs, same_shape=False),
        _unary("QLinearSigmoid", []),
        _unary("QLinearLeakyRelu", [("alpha", A.FLOAT, False)]),
        _unary("QLinearSoftmax", [("axis", A.INT, False), ("opset", A.INT, True)], (True, False)),
        concat,
        qgemm,
    ]


_registered = False


def register() -> None:
    """Registers the schemas with onnx (once per process)."""
    global _registered
    if not _registered:
        for s in schemas():
            defs.register_schema(s)
        _registered = True


def check_model(path: str) -> None:
    """onnx.checker.check_model(path, full_check=True) with the com.microsoft schemas registered.
    Raises onnx.checker.ValidationError or onnx.shape_inference.InferenceError."""
    register()
    onnx.checker.check_model(path, full_check=True)


def _self_test() -> int:
    """Each registered schema accepts a well-formed node and refuses what onnxruntime refuses at
    load (checked here against onnxruntime too); the typed outputs let strict shape inference
    catch a wrong declared shape after a com.microsoft node (which onnxruntime lets through)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import helper as h
    from onnx import numpy_helper as nh

    register()

    def model(node, inits, out_type=TensorProto.UINT8, out_shape=(1, 4), inputs=(("x", TensorProto.UINT8, [1, 4]),)):
        g = h.make_graph(
            [node, h.make_node("DequantizeLinear", ["y", "s", "z"], ["out"])],
            "t",
            [h.make_tensor_value_info(n, t, s) for n, t, s in inputs],
            [h.make_tensor_value_info("out", TensorProto.FLOAT, list(out_shape))],
            [nh.from_array(np.asarray(v), n) for n, v in inits.items()],
        )
        return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid(DOMAIN, 1)], ir_version=8)

    s, z = np.float32(0.5), np.uint8(128)
    sz = {"s": s, "z": z}
    ins = ["x", "s", "z", "x", "s", "z", "s", "z"]
    unary = ["x", "s", "z", "s", "z"]

    def node(op, inputs, **attrs):
        return h.make_node(op, inputs, ["y"], domain=DOMAIN, **attrs)

    cases = [
        ("QLinearAdd, scalar parameters", model(node("QLinearAdd", ins), sz), None),
        ("QLinearMul, a [1] scale", model(node("QLinearMul", ins), {"s": np.array([s]), "z": z}), "must be a scalar"),
        (
            "QLinearSigmoid, an int8 zero point for uint8 data",
            model(node("QLinearSigmoid", ["x", "s", "zi", "s", "z"]), {**sz, "zi": np.int8(0)}),
            "zero point",
        ),
        ("QLinearLeakyRelu, an attribute it does not have", model(node("QLinearLeakyRelu", unary, beta=1.0), sz), "beta"),
        (
            "QLinearSoftmax, no y_zero_point",
            model(node("QLinearSoftmax", ["x", "s", "z", "s", ""], opset=13), sz),
            "input 4 is marked single",
        ),
    ]
    gap_in = (("x", TensorProto.UINT8, [1, 4, 3, 3]),)
    gap = node("QLinearGlobalAveragePool", unary, channels_last=0)
    cases.append(("QLinearGlobalAveragePool", model(gap, sz, out_shape=(1, 4, 1, 1), inputs=gap_in), None))
    cases.append(
        (
            "QLinearGlobalAveragePool, an output declared with the input's shape",
            model(gap, {"s": s, "z": z}, out_shape=(1, 4, 3, 3), inputs=gap_in),
            "",
        )
    )
    concat = h.make_node("QLinearConcat", ["s", "z", "x", "s", "z", "x", "s", "z"], ["y"], domain=DOMAIN, axis=1)
    cases.append(("QLinearConcat", model(concat, {"s": s, "z": z}, out_shape=(1, 8)), None))
    # (onnxruntime accepts a declared output shape its inference contradicts.)
    ort_lenient = {"QLinearGlobalAveragePool, an output declared with the input's shape"}
    failures = 0
    for what, m, expect in cases:
        try:
            onnx.checker.check_model(m, full_check=True)
            err = None
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            err = str(e)
        try:
            quiet = ort.SessionOptions()
            quiet.log_severity_level = 4  # the refusal is the expected outcome, not news
            ort.InferenceSession(m.SerializeToString(), quiet, providers=["CPUExecutionProvider"])
            ort_refuses = False
        except Exception:  # noqa: BLE001 (onnxruntime raises its own exception types)
            ort_refuses = True
        ok = (err is None) if expect is None else (err is not None and expect in err)
        ok = ok and ort_refuses == (expect is not None and what not in ort_lenient)
        failures += not ok
        verdict = "accepted" if err is None else "refused: " + err.splitlines()[0]
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {verdict} (onnxruntime {'refuses' if ort_refuses else 'loads'} it)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(_self_test())
