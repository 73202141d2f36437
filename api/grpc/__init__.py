"""Qdrant's gRPC API (port 6334) over the same operations and reads as the REST API.

The message and service definitions are the ones qdrant-client ships
(``qdrant_client.grpc``). This package only converts: requests to operations and
read requests (convert.py), results back to messages, Qdrant errors to gRPC
status codes (errors.py); the rest is api/service.py, storage/ and streams/.
"""
