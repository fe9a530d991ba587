/**
 * The call pipeline that implements {@link dev.secinfra.rpc.Invoker} ({@link
 * dev.secinfra.internal.call.CallPipeline}), the request encoding ({@link
 * dev.secinfra.internal.call.RequestEncoder}) and the reading of answers ({@link
 * dev.secinfra.internal.call.Answers}).
 */
package dev.secinfra.internal.call;
