package dev.secinfra.errors;

/** The resource exists or changed meanwhile ({@code already_exists}, {@code conflict}). */
public class ConflictException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public ConflictException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
