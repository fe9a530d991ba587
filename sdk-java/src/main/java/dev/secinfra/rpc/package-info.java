/**
 * The contract generated code calls: the {@link dev.secinfra.rpc.MethodDescriptor} of each RPC,
 * the one {@link dev.secinfra.rpc.Invoker} interface, the per-call {@link
 * dev.secinfra.rpc.CallOptions} with the metadata they capture ({@link
 * dev.secinfra.rpc.MetaCapture}, {@link dev.secinfra.rpc.ResponseMeta}), and the JSON wire helpers
 * ({@link dev.secinfra.rpc.Wire}). The implementation behind it lives in {@code
 * dev.secinfra.internal}.
 */
package dev.secinfra.rpc;
