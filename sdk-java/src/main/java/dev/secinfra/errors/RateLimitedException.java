package dev.secinfra.errors;

/** The server limits the caller's rate ({@code rate_limited}); see {@link #retryAfter()}. */
public class RateLimitedException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public RateLimitedException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
