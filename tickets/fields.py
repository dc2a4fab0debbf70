"""Model fields that keep personal data encrypted in the database (see tickets.crypto)."""

from typing import Any

from django import forms
from django.db import models

from tickets import crypto


class EncryptedTextField(models.TextField):
    """Text stored encrypted, read back in the clear. It cannot be searched or filtered in
    SQL; use a BlindIndexField next to it for exact lookups."""

    def __init__(self, *args: Any, form_class: type[forms.Field] | None = None, **kwargs: Any) -> None:
        self.form_class = form_class
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        return name, path, args, kwargs

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return value if value is None else crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return value if value is None else crypto.encrypt(str(value))

    def formfield(self, form_class: Any = None, choices_form_class: Any = None, **kwargs: Any) -> Any:
        if self.form_class is not None and form_class is None:
            form_class = self.form_class
            kwargs.setdefault("widget", forms.TextInput)
        return super().formfield(form_class=form_class, choices_form_class=choices_form_class, **kwargs)


class BlindIndexField(models.CharField):
    """A keyed hash of another field of the same row, kept in step on every save."""

    def __init__(self, *args: Any, source: str = "", **kwargs: Any) -> None:
        self.source = source
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        for default in ("max_length", "blank", "editable", "db_index"):
            kwargs.pop(default, None)
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = crypto.blind_index(getattr(model_instance, self.source) or "")
        setattr(model_instance, self.attname, value)
        return value
