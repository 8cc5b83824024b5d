#!/usr/bin/env python3
"""Recreate ONNX's backend node test cases with onnx's own generator.

    gen_onnx_node_tests.py OUT_DIR

The onnx wheel ships the generator (`onnx.backend.test.case.node`: one `export_*` function per
case, numpy reference outputs, `np.random.seed(0)` before each) but not the generated
`onnx/backend/test/data/node` folders. This collects every node case and writes it with onnx's own
writer, `onnx.backend.test.cmd_tools.generate_data` (the `backend-test-tools generate-data`
command, which in onnx 1.23 writes only the model cases), into OUT_DIR/node/<test name>/:
`model.onnx` and `test_data_set_0/{input,output}_<i>.pb`. OUT_DIR/node is replaced.

Prints the number of cases written. Deterministic for a given onnx version (scripts/requirements.txt).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output folder (cases go to OUT/node)")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")  # the case generators warn about deprecated dtypes etc.
    import onnx
    import onnx.backend.test.case.model as model_test
    import onnx.backend.test.case.node as node_test
    from onnx.backend.test import cmd_tools

    cases = node_test.collect_testcases(None)
    if not cases:
        print(f"error: onnx {onnx.__version__} generated no node test cases", file=sys.stderr)
        return 1
    # generate_data writes what model_test.collect_testcases() returns, each case into
    # OUT/<case.kind>/<case.name>; point it at the node cases (kind "node").
    model_test.collect_testcases = lambda: cases
    shutil.rmtree(args.out / "node", ignore_errors=True)  # no stale cases from another onnx version
    cmd_tools.generate_data(argparse.Namespace(output=str(args.out)))
    written = sum(1 for p in (args.out / "node").iterdir() if (p / "model.onnx").is_file())
    if written != len(cases):
        print(f"error: {len(cases)} cases collected but {written} written", file=sys.stderr)
        return 1
    print(f"{written} onnx {onnx.__version__} node test cases in {args.out / 'node'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
