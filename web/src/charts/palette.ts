/** Series colours, each at least 3:1 against the white background (WCAG non-text contrast). */
export const palette = {
  ac: '#1f5fbf',
  dc: '#1b7f3b',
  efficiency: '#a14b00',
  threshold: '#c62828',
  soc: '#6a3fb5',
  temperature: '#b3261e',
  axis: '#1b1f24',
  grid: '#d8dde3',
} as const;

/** A colour with an alpha channel, for bar fills. */
export const translucent = (hex: string, alpha = 0.55) =>
  `${hex}${Math.round(alpha * 255)
    .toString(16)
    .padStart(2, '0')}`;
