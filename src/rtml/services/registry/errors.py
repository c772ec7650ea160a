"""Errors of the schema registry, with Confluent's HTTP statuses and error codes.

The server answers each as ``{"error_code": <code>, "message": <message>}``.
"""

from __future__ import annotations

from rtml.errors import RtmlError


class RegistryError(RtmlError):
    http_status = 500
    error_code = 50001

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class SubjectNotFound(RegistryError):
    http_status, error_code = 404, 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFound(RegistryError):
    http_status, error_code = 404, 40402

    def __init__(self, version: int | str) -> None:
        super().__init__(f"Version {version} not found.")


class SchemaNotFound(RegistryError):
    http_status, error_code = 404, 40403


class SubjectSoftDeleted(RegistryError):
    http_status, error_code = 404, 40404

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently")


class SubjectNotSoftDeleted(RegistryError):
    http_status, error_code = 404, 40405

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' was not deleted first before being permanently deleted")


class VersionSoftDeleted(RegistryError):
    http_status, error_code = 404, 40406

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeleted(RegistryError):
    http_status, error_code = 404, 40407

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
        )


class SubjectConfigNotFound(RegistryError):
    http_status, error_code = 404, 40408

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' does not have subject-level compatibility configured")


class IncompatibleSchema(RegistryError):
    http_status, error_code = 409, 409


class InvalidSchema(RegistryError):
    http_status, error_code = 422, 42201


class InvalidVersion(RegistryError):
    http_status, error_code = 422, 42202

    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevel(RegistryError):
    http_status, error_code = 422, 42203


class OperationNotPermitted(RegistryError):
    http_status, error_code = 422, 42205


class BadRequest(RegistryError):
    http_status, error_code = 400, 400


class StoreError(RegistryError):
    """The backend store failed or cannot be reached."""

    http_status, error_code = 500, 50001
