import fc from 'fast-check';
import {
  type AoeMessageBase,
  type AtaMessage,
  AtaStatus,
  formatMac,
  type MacMaskMessage,
  type QueryConfigMessage,
  type ReserveMessage,
  type VendorMessage,
} from '../../../src/aoe/index.js';

/** Largest ATA payload a 9000-byte MTU frame carries (17 sectors). */
export const MAX_JUMBO_SECTORS = 17;

export const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => formatMac(b));

const bytesArb = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));

/** Cheap exact-size payload: random first bytes, rest derived, so 8 KiB frames stay fast. */
const payloadArb = (len: number) =>
  fc
    .tuple(fc.uint8Array({ minLength: 0, maxLength: 16 }), fc.integer({ min: 0, max: 255 }))
    .map(([head, seed]) => {
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = i < head.length ? head[i]! : (seed + i * 31) & 0xff;
      return b;
    });

export const baseArb = (response: boolean, errorFlag?: boolean): fc.Arbitrary<AoeMessageBase> =>
  fc.record({
    dst: macArb,
    src: macArb,
    response: fc.constant(response),
    errorFlag: errorFlag === undefined ? fc.boolean() : fc.constant(errorFlag),
    error: fc.integer({ min: 0, max: 255 }),
    major: fc.integer({ min: 0, max: 0xffff }),
    minor: fc.integer({ min: 0, max: 0xff }),
    tag: fc.integer({ min: 0, max: 0xffffffff }),
  });

const lbaArb = (lba48: boolean) => fc.integer({ min: 0, max: lba48 ? 2 ** 48 - 1 : 0x0fffffff });

export const ataRequestArb: fc.Arbitrary<AtaMessage> = fc
  .record({
    base: baseArb(false),
    lba48: fc.boolean(),
    device: fc.boolean(),
    async: fc.boolean(),
    write: fc.boolean(),
    errFeature: fc.integer({ min: 0, max: 255 }),
    cmdStatus: fc.integer({ min: 0, max: 255 }),
  })
  .chain((r) =>
    fc
      .record({
        lba: lbaArb(r.lba48),
        sectorCount: fc.integer({ min: 0, max: r.write ? MAX_JUMBO_SECTORS : 255 }),
      })
      .chain(({ lba, sectorCount }) =>
        (r.write ? payloadArb(sectorCount * 512) : fc.constant(Buffer.alloc(0))).map(
          (data): AtaMessage => ({
            ...r.base,
            command: 'ata',
            lba48: r.lba48,
            device: r.device,
            async: r.async,
            write: r.write,
            errFeature: r.errFeature,
            cmdStatus: r.cmdStatus,
            sectorCount,
            lba,
            data,
          }),
        ),
      ),
  );

export const ataResponseArb: fc.Arbitrary<AtaMessage> = fc
  .record({
    base: baseArb(true),
    lba48: fc.boolean(),
    device: fc.boolean(),
    async: fc.boolean(),
    write: fc.boolean(),
    errFeature: fc.integer({ min: 0, max: 255 }),
    // Bias towards good statuses so data-carrying replies are common.
    cmdStatus: fc.oneof(fc.constantFrom(AtaStatus.DRDY, 0), fc.integer({ min: 0, max: 255 })),
    sectorCount: fc.integer({ min: 0, max: 255 }),
    withData: fc.boolean(),
  })
  .chain((r) => {
    const mayCarry = !r.base.errorFlag && !r.write && (r.cmdStatus & AtaStatus.FAIL_MASK) === 0;
    const carries = mayCarry && r.withData && r.sectorCount <= MAX_JUMBO_SECTORS;
    return fc
      .record({
        lba: lbaArb(r.lba48),
        data: carries ? payloadArb(r.sectorCount * 512) : fc.constant(Buffer.alloc(0)),
      })
      .map(
        ({ lba, data }): AtaMessage => ({
          ...r.base,
          command: 'ata',
          lba48: r.lba48,
          device: r.device,
          async: r.async,
          write: r.write,
          errFeature: r.errFeature,
          cmdStatus: r.cmdStatus,
          sectorCount: r.sectorCount,
          lba,
          data,
        }),
      );
  });

/** All five ccmds; error replies (E) may carry any nibble since they echo bad requests. */
export const queryConfigArb = (response: boolean, ccmd?: number): fc.Arbitrary<QueryConfigMessage> =>
  baseArb(response).chain((base) =>
    fc
      .record({
        bufferCount: fc.integer({ min: 0, max: 0xffff }),
        firmwareVersion: fc.integer({ min: 0, max: 0xffff }),
        sectorCount: fc.integer({ min: 0, max: 255 }),
        aoeVersion: base.errorFlag ? fc.integer({ min: 0, max: 15 }) : fc.integer({ min: 0, max: 1 }),
        ccmd:
          ccmd !== undefined
            ? fc.constant(ccmd)
            : base.errorFlag
              ? fc.integer({ min: 0, max: 15 })
              : fc.integer({ min: 0, max: 4 }),
        config: fc.oneof(bytesArb(0, 64), bytesArb(0, 1024), bytesArb(1024, 1024)),
      })
      .map((a): QueryConfigMessage => ({ ...base, command: 'query-config', ...a })),
  );

export const macMaskArb = (response: boolean): fc.Arbitrary<MacMaskMessage> =>
  baseArb(response).chain((base) => {
    const checked = !base.errorFlag;
    return fc
      .record({
        mcmd: checked ? fc.integer({ min: 0, max: 1 }) : fc.integer({ min: 0, max: 255 }),
        merror: fc.integer({ min: 0, max: 255 }),
        directives: fc.array(
          fc.record({
            dcmd: checked && !response ? fc.integer({ min: 0, max: 2 }) : fc.integer({ min: 0, max: 255 }),
            mac: macArb,
          }),
          { maxLength: 255 },
        ),
      })
      .map((a): MacMaskMessage => ({ ...base, command: 'mac-mask', ...a }));
  });

export const reserveArb = (response: boolean): fc.Arbitrary<ReserveMessage> =>
  baseArb(response).chain((base) =>
    fc
      .record({
        rcmd: base.errorFlag ? fc.integer({ min: 0, max: 255 }) : fc.integer({ min: 0, max: 2 }),
        macs: fc.array(macArb, { maxLength: 255 }),
      })
      .map((a): ReserveMessage => ({ ...base, command: 'reserve', ...a })),
  );

/** Vendor arguments of at least 36 bytes: shorter ones come back with the frame padding. */
export const vendorArb: fc.Arbitrary<VendorMessage> = fc
  .record({
    base: fc.boolean().chain((r) => baseArb(r)),
    code: fc.integer({ min: 0xf0, max: 0xff }),
    argument: bytesArb(36, 300),
  })
  .map(({ base, code, argument }): VendorMessage => ({ ...base, command: 'vendor', code, argument }));
