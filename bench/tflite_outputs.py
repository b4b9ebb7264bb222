"""Run a .tflite on fixed, seeded inputs with one named runtime and save the raw outputs (.npz).

Used by bench/check_tflite_runtime.sh to compare tflite-runtime 2.14 (numpy<2, its own venv)
with ai-edge-litert (the project's venv). Needs only numpy and the runtime: no project imports,
so it runs in a venv that has nothing else.

    python bench/tflite_outputs.py MODEL.tflite --runtime tflite-runtime --out outputs.npz
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--runtime", choices=["tflite-runtime", "ai-edge-litert"], required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200, help="how many inputs")
    ap.add_argument("--builtin-kernels", action="store_true", help="TFLite's built-in kernels, without the XNNPACK delegate")
    ap.add_argument("--faces", type=Path, help=".npz with uint8 'faces' (N, S, S) to use instead of seeded noise")
    args = ap.parse_args(argv)

    sidecar = json.loads(args.model.with_suffix(".json").read_text())
    digest = hashlib.sha256(args.model.read_bytes()).hexdigest()
    if digest != sidecar.get("tflite_sha256"):
        sys.exit(f"{args.model}: sha256 {digest[:16]}... does not match its sidecar")
    if args.runtime == "tflite-runtime":
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter, OpResolverType
        version = tflite_runtime.__version__
    else:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        version = getattr(ai_edge_litert, "__version__", "?")
    # --builtin-kernels: no default delegate (XNNPACK), i.e. TFLite's own int8 kernels only.
    options = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if args.builtin_kernels else {}
    interpreter = Interpreter(model_path=str(args.model), num_threads=1, **options)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    shape = tuple(inp["shape"])
    if args.faces:  # real faces (uint8 (N, S, S) array 'faces'), e.g. FER2013 PublicTest
        with np.load(args.faces, allow_pickle=False) as z:
            raw = z["faces"][: args.n].astype(np.float32)
    else:
        # Smooth-ish random "faces" (box-blurred noise) rather than pure noise: activations like real inputs.
        raw = np.random.default_rng(0).integers(0, 256, (args.n, *shape[1:3])).astype(np.float32)
        raw = (raw + np.roll(raw, 1, 1) + np.roll(raw, 1, 2) + np.roll(raw, -1, 1) + np.roll(raw, -1, 2)) / 5
    scale, zero = inp["quantization"]
    x = np.clip(np.round(raw / scale + zero), -128, 127).astype(inp["dtype"])[..., None]
    outputs = []
    for i in range(len(x)):
        interpreter.set_tensor(inp["index"], x[i : i + 1])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0].copy())
    np.savez(args.out, outputs=np.stack(outputs), scale=np.float64(out["quantization"][0]))
    print(f"{args.runtime} {version}{' (built-in kernels)' if args.builtin_kernels else ''} (numpy {np.__version__}): ran {len(x)} {'faces' if args.faces else 'noise inputs'}, "
          f"input {inp['dtype'].__name__}{[int(v) for v in shape]}, output {out['dtype'].__name__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
