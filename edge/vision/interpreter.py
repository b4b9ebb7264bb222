"""Which TFLite interpreter to use: LiteRT (``ai-edge-litert``), then ``tflite-runtime``, then
TensorFlow's own, in that order. The edge never needs TensorFlow; the trainer has it anyway."""
from __future__ import annotations


def interpreter_class():
    """(Interpreter class, name of the runtime that provides it)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow"
    except ImportError:
        raise ImportError("no TFLite runtime is installed: pip install ai-edge-litert "
                          "(or tflite-runtime, or tensorflow)") from None


def make_interpreter(model_path: str | None = None, model_content: bytes | None = None, num_threads: int | None = None):
    cls, _ = interpreter_class()
    interpreter = cls(model_path=model_path, model_content=model_content, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter
