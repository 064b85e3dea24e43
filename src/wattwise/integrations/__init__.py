"""Adapters to the tools ML engineers already run, each imported only when used: the Prometheus exporter and
Pushgateway (:mod:`.prometheus`, :mod:`.exporter`), Hugging Face Trainer, Lightning and Keras callbacks
(:mod:`.huggingface`, :mod:`.lightning`, :mod:`.keras`, built on :mod:`.training`), MLflow logging
(:mod:`.mlflow`) and measured Ray tasks (:mod:`.ray_tasks`). See docs/integrations.md."""
