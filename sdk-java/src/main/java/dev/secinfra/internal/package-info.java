/**
 * The hand-written runtime behind {@link dev.secinfra.rpc}, one subject per package: {@code retry},
 * {@code cache}, {@code rotation}, {@code transport}, {@code call} and {@code identity}, with the
 * error constructors they share ({@link dev.secinfra.internal.Errors}). Not a public API: it may
 * change in any release. docs/sdk/floor-plan.md maps each subject to its file.
 */
package dev.secinfra.internal;
