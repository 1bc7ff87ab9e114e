"""The data layer: TFDS builders (array_record, no TensorFlow), grain pipelines, tokenizers.

Entry points (what `common.train.task.Task` calls):
  pipeline.train_iterator / pipeline.eval_iterator / pipeline.validate.
Config helpers: config.image_data_config / config.text_data_config.

Nothing is imported eagerly here: TFDS, grain and sentencepiece load only when a pipeline is
built, so `import common.data` stays cheap for projects that bring their own data.
"""
