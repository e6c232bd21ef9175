"""What turns text into scores: model resolution, devices, the encoder inference engine and its
ONNX backend, causal-LM scoring, prompts, the API client and its prices."""
