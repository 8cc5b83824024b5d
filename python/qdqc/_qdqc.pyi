"""Type stubs of the native module (python/src/lib.rs); use the functions of `qdqc` instead."""

from typing import Any, Dict, List, Optional, Tuple, Union

__version__: str
KERNEL_MODEL: str

#: (kind, message, file, node, exit code)
Failure = Tuple[str, str, Optional[str], Optional[str], int]
#: Per sample, (input name, .npy bytes) pairs.
SampleList = List[List[Tuple[str, bytes]]]
#: A folder of samples, or samples in memory.
SamplesArg = Union[str, SampleList]

class NativeError(Exception):
    args: Failure

def compile_file(
    src: str,
    dst: str,
    args: Dict[str, Any],
    calibrate: Optional[SamplesArg] = None,
    verify_inputs: Optional[SamplesArg] = None,
) -> Tuple[str, Optional[Failure]]: ...
def stats(path: str, follow_symlinks: bool) -> str: ...
def show(path: str, max_const: int, follow_symlinks: bool) -> str: ...
def verify(
    orig: str,
    compiled: str,
    samples_count: int,
    seed: int,
    dim: int,
    follow_symlinks: bool,
    max_tensor_bytes: Optional[int],
    inputs: Optional[SamplesArg] = None,
) -> Tuple[str, Optional[Failure]]: ...
def accuracy(
    float: str, qdq: str, compiled: Optional[str], args: Dict[str, Any], inputs: Optional[SamplesArg] = None
) -> str: ...
def run(
    path: str,
    inputs: Optional[List[Tuple[str, bytes]]],
    seed: int,
    dim: int,
    follow_symlinks: bool,
    max_tensor_bytes: Optional[int],
) -> List[Tuple[str, bytes]]: ...
def pass_names() -> List[str]: ...
