package dev.secinfra.errors;

/** The request was invalid: {@code invalid_argument}, {@code payload_too_large}, {@code method_not_allowed}, {@code idempotency_key_reused}. */
public class InvalidArgumentException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public InvalidArgumentException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
