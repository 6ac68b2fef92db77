"""The snippets of the system description (SEED.md), with only `import modal` changed.

Bodies that need torch or a model are replaced by small stand-ins, and the image is the
same chain of Image calls without the multi-gigabyte packages; decorators, arguments and
calls are as written there.
"""

import os
import time

import skiff as modal

app = modal.App("my-llm-app")

# SEED: .pip_install("torch", "transformers", "vllm", "accelerate") -- too big to build in tests
image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install("fastapi")
    .env({"HF_HOME": "/cache"})
)


@app.function(
    image=image,
    gpu="A100",  # Request A100 GPU
    memory=65536,  # 64GB RAM
    timeout=7200,  # 2-hour timeout
    volumes={"/cache": modal.Volume.from_name("model-cache", create_if_missing=True)},  # Persistent storage
)
def fine_tune(dataset_path: str, output_path: str):
    # This code runs on A100 in the cloud
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    with open(output_path, "w") as f:
        f.write(f"trained on {dataset_path} with GPU {os.environ.get('SKIFF_GPU_INDICES')}")
    return os.environ.get("HF_HOME"), os.environ.get("SKIFF_GPU_INDICES")


@app.function(image=image, gpu="L4", concurrency_limit=20)
def embed_document(text: str) -> list[float]:
    time.sleep(0.2)
    return [float(len(text)), float(os.environ["SKIFF_GPU_INDICES"])]


@app.function(image=image, gpu="A10G")
@modal.web_endpoint(method="POST")
async def generate(request: dict) -> dict:
    return {"response": request["prompt"].upper()}


openai_key = modal.Secret.from_name("openai-api-key")
