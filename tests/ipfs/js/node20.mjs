// Helia 7's dependencies call Promise.withResolvers (Node >= 22); Node 20 here lacks it. The standard
// definition, installed only where it is missing; import this module first.
if (Promise.withResolvers === undefined) {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
