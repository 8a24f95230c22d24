"""Strawberry's extension hooks, wrapped once per extension class instead of once per operation.

For every operation Strawberry asks each extension's class whether each hook is a generator, an
async generator or a plain function, and wraps it in a new context-manager function: a tenth of
a one-patient query's CPU, for answers that never change. Here each (class, hook) is wrapped
once; an operation only binds the wrappers to its extension instances. Entering and leaving the
hooks stays Strawberry's.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import TYPE_CHECKING, Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator


@functools.cache
def _wrapped(extension_class: type, hook_name: str) -> tuple[Any, bool] | None:
    """A context-manager function of the extension instance, and whether it is async; None when
    the class keeps SchemaExtension's default (which does nothing)."""
    function = getattr(extension_class, hook_name)
    if function is getattr(SchemaExtension, hook_name):
        return None
    if inspect.isgeneratorfunction(function):
        return contextlib.contextmanager(function), False
    if inspect.isasyncgenfunction(function):
        return contextlib.asynccontextmanager(function), True
    if inspect.iscoroutinefunction(function):

        @contextlib.asynccontextmanager
        async def awaited(extension: SchemaExtension) -> AsyncIterator[None]:
            await function(extension)
            yield

        return awaited, True
    if callable(function):

        @contextlib.contextmanager
        def called(extension: SchemaExtension) -> Iterator[None]:
            function(extension)
            yield

        return called, False
    raise ValueError(f"Hook {hook_name} on {extension_class} must be callable")


class _CachedHooks(ExtensionContextManagerBase):
    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        extension_class: type = type(extension)
        wrapped = _wrapped(extension_class, self.HOOK_NAME)
        if wrapped is None:
            return None
        function, is_async = wrapped
        hook: Callable[[], Any] = functools.partial(function, extension)
        return WrappedHook(extension=extension, hook=hook, is_async=is_async)


class _Operation(_CachedHooks, OperationContextManager):
    pass


class _Validation(_CachedHooks, ValidationContextManager):
    pass


class _Parsing(_CachedHooks, ParsingContextManager):
    pass


class _Executing(_CachedHooks, ExecutingContextManager):
    pass


class CachedHooksRunner(SchemaExtensionsRunner):
    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
