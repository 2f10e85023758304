"""The hourly path: the model registry (`registry`), one prediction cycle (`prediction`), resolving outcomes
(`outcomes`) and the daily performance of the live record (`performance`). Never imports `offline/`."""
