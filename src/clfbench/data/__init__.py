"""Task data: reading files (`files`), `Texts`/`LabeledTexts` (`texts`), the split rules
(`splits`) and the task registry (`tasks`)."""
