/**
 * The default VitePress theme with one stylesheet on top: tables that fit the content column (see
 * custom.css), so the field references and troubleshooting tables show every column at 1280 px.
 */
import DefaultTheme from 'vitepress/theme';
import './custom.css';

export default DefaultTheme;
