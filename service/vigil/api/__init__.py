"""The REST control plane: FastAPI app factory, routers, request/response models, auth."""
