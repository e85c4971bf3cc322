# Placeholder so the CDK app synthesizes; the container work replaces this file.
FROM python:3.11-slim
